"""Money received from accounts: payments, what of each is applied to which invoice, and what is left."""
