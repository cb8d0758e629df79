//! The consumers: every folder under `consumers-dir` with a Dockerfile, named, validated and
//! configured. Nothing here reads a build context or talks to AWS.

pub mod config;
pub mod discovery;
pub mod dockerfile;
pub mod fargate;
pub mod names;
pub mod select;
pub mod shape;
