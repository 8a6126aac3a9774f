"""Bulk import of dovuti and export of pagati ("per flussi" services): CSV tracciati, jobs, files."""
