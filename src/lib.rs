//! clickback: a server-to-server (postback) affiliate tracker.
//!
//! A visitor clicks an affiliate's tracking link; clickback stores the click
//! in Redis and redirects to the advertiser with a click id. When the visitor
//! converts, the advertiser's server calls the postback URL with that id and
//! clickback credits the affiliate exactly once. No cookies, no pixels.
//!
//! # Layout
//!
//! - [`access`]: who calls the API: the admin token, API keys and their
//!   roles, failed authentication rate-limited, keys' last use.
//! - [`audit`]: the audit log of every change made through the API.
//! - [`config`]: settings from the environment, every variable documented.
//! - [`startup`]: [`startup::Application`] builds the store, cache, metrics and HTTP server.
//! - [`routes`]: thin HTTP adapters, one module per endpoint group, and the
//!   one CSV writer of every report and list (`routes::csv`).
//! - [`click`]: the redirect hot path.
//! - [`background`]: every background task, started, stopped and drained in one place.
//! - [`batch`]: queues that a background task writes out in batches.
//! - [`caps`]: daily / monthly / lifetime caps on conversions and payout.
//! - [`clock`]: the injected clock.
//! - [`postback`]: conversion crediting as stages (parse, authenticate, price,
//!   judge, apply, answer), status changes, de-duplication, the troubleshooting log.
//! - [`delivery`]: deliveries of each conversion to the affiliate's server
//!   and to the offer's destinations (GA4, Meta, TikTok, webhooks): the
//!   worker that claims, sends, retries and dead-letters them, the retry
//!   schedule, the guarded HTTP sender, and each platform's request
//!   (`delivery::platforms`).
//! - [`stats`]: reports summed from per-day counters, or from the report
//!   counters by hour and sub-ID, source or goal (`store::report`), in any time zone.
//! - [`offers`]: the in-process cache of offers and affiliates.
//! - [`store`]: the [`store::Store`] trait, its Redis and in-memory implementations, the key layout.
//! - [`domain`]: ids, money, URLs, clicks and conversions, free of HTTP and Redis.
//! - [`metrics`]: the Prometheus registry.
//! - [`error`]: the error policy and the one mapping to HTTP.
//! - [`logging`]: the logger, which keeps client faults out of ERROR.
//! - [`state`]: what every handler shares.
//! - [`demo`]: demo data for the one-command start.

pub mod access;
pub mod audit;
pub mod background;
pub mod batch;
pub mod caps;
pub mod click;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod domain;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod offers;
pub mod postback;
pub mod routes;
pub mod startup;
pub mod state;
pub mod stats;
pub mod store;
