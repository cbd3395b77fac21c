"""The Image service (Glance v2): images, uploads, sharing, import, safe formats."""
