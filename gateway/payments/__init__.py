"""Dovuti, carts, IUVs, avvisi, receipts and the payment state machine."""
