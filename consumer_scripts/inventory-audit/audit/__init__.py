"""Inventory audit consumer: records who-changed-what for the inventory tables, column by column."""
