pub use dirkit_core::*;
