//! Shared helpers of the wsproto example programs.
