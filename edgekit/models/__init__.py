"""Restoration zoo (builders + shipped weights) and safe loading of users' models."""
