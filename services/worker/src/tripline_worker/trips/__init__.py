"""Trip progress from telemetry: position, distance travelled, remaining route, ETA."""
