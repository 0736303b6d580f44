//! Incremental UTF-8 validation across frame and buffer boundaries.
