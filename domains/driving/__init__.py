"""Driving pack: distil a vision-language teacher's reasoning into a real-time pixel planner (highway-env)."""
