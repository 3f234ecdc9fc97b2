"""Sweeps: tokens received on deposit addresses moved to the network's hot wallet."""
