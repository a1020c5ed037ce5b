//! End-to-end tests of the public HTTP contract (docs/API.md: §1–5, the
//! instances sharing one Redis of §7, and clickback's additions) against a
//! real clickback and a real Redis. One binary, one module per endpoint.

mod admin;
mod audit;
mod bad_input;
mod click;
mod cluster;
mod conversions;
mod deliveries;
mod deploy_files;
mod destinations;
mod dialects;
mod fault;
mod health_metrics;
mod helpers;
mod instances;
mod integrity;
mod keys;
mod offer_rules;
mod openapi;
mod outage;
mod postback;
#[path = "../support/receiver.rs"]
mod receiver;
mod reports;
mod shutdown;
mod startup;
mod stats;
