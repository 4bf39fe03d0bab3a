//! The export reads in pages of its own, so it has no DataLoader keys.
