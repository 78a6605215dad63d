"""The commissioning page: live view, zone editor, boards, events and health (docs/web.md)."""
