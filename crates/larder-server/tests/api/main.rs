//! The service end to end over HTTP: the setup flow, bad input, tenant isolation, the
//! operational endpoints, and two real `larder` processes sharing PostgreSQL and Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod admin;
mod bad_input;
mod clients;
mod flow;
mod isolation;
mod members;
mod operations;
mod processes;
mod webhooks;
