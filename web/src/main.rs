//! WatchDog web app (to be built with Trunk).
fn main() {}
