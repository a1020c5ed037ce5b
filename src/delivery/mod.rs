//! Affiliate postbacks: the retry schedule and the guarded HTTP sender that
//! deliver each conversion to the affiliate's own server.

pub mod schedule;
pub mod sender;
