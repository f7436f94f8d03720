//! Live updates: verdicts, incident changes and notes, fanned out to SSE clients.

/// One live update.
#[derive(Clone, Debug)]
pub struct ServerEvent {
    /// SSE event name: `verdict`, `incident`, `note`.
    pub kind: &'static str,
    /// The JSON payload.
    pub data: serde_json::Value,
}
