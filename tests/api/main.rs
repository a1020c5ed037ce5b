//! End-to-end tests of the public HTTP contract (API.md §1–5) against a real
//! clickback and a real Redis. One binary, one module per endpoint.

mod admin;
mod bad_input;
mod click;
mod fault;
mod health_metrics;
mod helpers;
mod integrity;
mod offer_rules;
mod outage;
mod postback;
mod startup;
mod stats;
