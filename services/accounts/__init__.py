"""Accounts: customers and admins, their credentials, and the admin account every deployment starts with."""
