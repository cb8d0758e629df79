//! One module per external system: a small trait the stages depend on, and the real client
//! beside it. Tests run the real clients against real servers (moto, the Docker engine, the
//! distribution registry) wherever one exists.

pub mod alarms;
pub mod aws_retries;
pub mod builder;
pub mod ecr;
pub mod ecs;
pub mod git;
pub mod github;
pub mod logs;
pub mod registry;
pub mod retry;
pub mod terraform;
