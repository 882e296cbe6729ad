"""Inventory: stock per product, and the stock that orders hold (reserve, commit, release)."""
