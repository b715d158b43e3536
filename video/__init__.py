"""Media I/O (ffmpeg), metrics, codec baselines and reports. Depends on `inr`, never on server/ui."""
