//! Feedback to where deploys come from: the verdict goes back to the deploy's source, so
//! the people looking at the deployment there see it too.

pub mod github;
