//! The one integration-test binary (linking is slow on small machines: keep one).

mod common;
mod fixtures;
