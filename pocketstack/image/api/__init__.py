"""The Image API (Glance v2), mounted under `/image`."""
