//! cdc-deploy: deploys a fleet of Change Data Capture consumers to AWS ECS Fargate.
//!
//! The modules read like the pipeline: [`discovery`] finds the consumers and
//! [`consumer_config`] validates each one's `consumer.toml`; [`build_context`] and
//! [`fingerprint`] hash what Docker would build; [`plan`] decides, purely, what to do;
//! [`report`] renders it; [`pipeline`] runs the stages for a command. [`gha`] holds the GitHub
//! runner's conventions and [`settings`] turns flags and action inputs into one validated
//! configuration.

pub mod build_context;
pub mod consumer_config;
pub mod context_tar;
pub mod deploy;
pub mod diagnostics;
pub mod discovery;
pub mod dockerignore;
pub mod ecr;
pub mod engine;
pub mod env_vars;
pub mod fargate;
pub mod fingerprint;
pub mod gha;
pub mod names;
pub mod pipeline;
pub mod plan;
pub mod registry;
pub mod report;
pub mod secret;
pub mod settings;
