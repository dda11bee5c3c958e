"""Value types shared by every layer: markets, commands in, events out, reject
reasons and bounds. Standard library only; nothing here does IO."""
