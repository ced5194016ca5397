//! The log of `plexer --log-format json`, read as events: a test asserts on an event's level,
//! target and fields (what happened, to which account, with which values), never on the
//! wording of a message, which may change.

use serde_json::Value;

/// One JSON log line.
#[derive(Debug)]
pub struct Event(Value);

impl Event {
    pub fn level(&self) -> &str {
        self.0["level"].as_str().unwrap_or_default()
    }

    pub fn target(&self) -> &str {
        self.0["target"].as_str().unwrap_or_default()
    }

    /// A field (`message` included), when the event has it.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.0["fields"].get(name)
    }

    /// A field as text: a string field as it is, any other value as JSON.
    pub fn text(&self, name: &str) -> Option<String> {
        self.field(name).map(|value| match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
    }

    /// Whether the field `name` reads `value`.
    pub fn has(&self, name: &str, value: &str) -> bool {
        self.text(name).as_deref() == Some(value)
    }
}

/// The events of a log; lines that are not JSON (a worker's own output) are left out.
pub fn events(log: &str) -> Vec<Event> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|value| value.get("fields").is_some())
        .map(Event)
        .collect()
}

/// The first event for which `wanted` holds.
pub fn find(log: &str, wanted: impl Fn(&Event) -> bool) -> Option<Event> {
    events(log).into_iter().find(|event| wanted(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_events_and_other_lines_are_not() {
        let log = "worker says hi\n{\"timestamp\":\"t\",\"level\":\"WARN\",\"fields\":\
                   {\"message\":\"m\",\"account\":\"bob\",\"worker_free\":true},\
                   \"target\":\"plexer_server::request\"}\n";
        let events = events(log);
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.level(), "WARN");
        assert_eq!(event.target(), "plexer_server::request");
        assert!(event.has("account", "bob"));
        assert!(event.has("worker_free", "true"));
        assert_eq!(event.text("missing"), None);
    }
}
