"""The lowest floor: writing files atomically and showing text from elsewhere safely. Imports nothing of the project."""
