"""The gateway as a client of the pagoPA node: Checkout carts (today's model) and nodoInviaCarrelloRPT (legacy)."""
