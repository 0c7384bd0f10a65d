//! The service end to end over HTTP: the setup flow, bad input, tenant isolation, the
//! operational endpoints, real `larder` processes (two sharing PostgreSQL and Redis; traces,
//! logs and shutdown).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod admin;
mod bad_input;
mod bodies;
mod browser;
mod clients;
mod docs;
mod faults;
mod flow;
mod hostile;
mod isolation;
mod links;
mod load;
mod mail;
mod members;
mod operations;
mod processes;
mod telemetry;
mod webhooks;
