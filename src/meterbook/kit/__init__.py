"""Small, dependency-free helpers shared by every domain: time, ids, money, JSON, merge patch."""
