//! Affiliate postbacks: the retry schedule that
//! deliver each conversion to the affiliate's own server.

pub mod schedule;
