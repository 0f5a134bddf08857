//! placeholder

pub mod codec;
