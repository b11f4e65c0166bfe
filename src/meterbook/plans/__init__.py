"""Plans with monthly versions, subscriptions and negotiated prices: which price applies (CONTRACT §6)."""
