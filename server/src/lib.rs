//! `watchdog`: the command line and server of WatchDog, as a library so that tests can
//! build the HTTP application (`app::app`) around a real store without a socket.

pub mod alerts;
pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod events;
pub mod explainer;
pub mod feedback;
pub mod follow;
pub mod ingest;
pub mod metrics;
pub mod outbox;
pub mod routes;
pub mod runner;
pub mod server;
pub mod state;
pub mod store;
pub mod verdicts;
