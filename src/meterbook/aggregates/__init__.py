"""Monthly aggregates: usage rolled up per account by product by UTC month by rating, kept in step with the events."""
