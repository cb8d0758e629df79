//! cdc-deploy: deploys a fleet of Change Data Capture consumers to AWS ECS Fargate.
//!
//! The tree reads as the pipeline. [`config`] turns flags, action inputs and the triggering event
//! into one validated configuration; [`consumers`] discovers the consumers and validates each
//! one's `consumer.toml`; [`context`] walks each build context once, for its fingerprint and for
//! the tar the image builder is sent; [`observe`] reads what AWS already holds; [`plan`] decides,
//! purely, what to do; [`apply`] does exactly that and returns outcomes (images, then Terraform); [`report`] renders plan
//! and outcomes for people. [`clients`] holds one small trait per external system with its real
//! client, [`gha`] the GitHub runner's conventions, [`cancel`] the run's cancellation by SIGTERM
//! or SIGINT, and [`pipeline`] runs the stages for a command.

pub mod apply;
pub mod cancel;
pub mod clients;
pub mod config;
pub mod consumers;
pub mod context;
pub mod diagnostics;
pub mod failure;
pub mod gha;
pub mod observe;
pub mod ops;
pub mod pipeline;
pub mod plan;
pub mod reference;
pub mod report;
pub mod secret;
