//! Stop strings, checked across token boundaries: text that could still be the start of a stop
//! string is held back until it either completes the stop (and is dropped) or cannot.

#[derive(Clone, Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Generated text not yet released.
    pending: String,
}

/// What pushing text released.
#[derive(Debug, PartialEq, Eq)]
pub struct Released {
    /// Text safe to show.
    pub text: String,
    /// A stop string was found; generation should end and nothing after it is shown.
    pub stopped: bool,
}

impl StopMatcher {
    pub fn new(stops: impl IntoIterator<Item = String>) -> StopMatcher {
        StopMatcher { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), pending: String::new() }
    }

    pub fn push(&mut self, text: &str) -> Released {
        self.pending.push_str(text);
        if let Some(at) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            let text = self.pending[..at].to_string();
            self.pending.clear();
            return Released { text, stopped: true };
        }
        // Hold back the longest tail that is a proper prefix of some stop string.
        let held = self
            .stops
            .iter()
            .flat_map(|s| (1..s.len()).rev().filter(|&n| s.is_char_boundary(n)).map(move |n| &s[..n]))
            .filter(|prefix| self.pending.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let cut = self.pending.len() - held;
        let text = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        Released { text, stopped: false }
    }

    /// Releases whatever is held (generation ended for another reason).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_spanning_pieces_stops_and_is_not_emitted() {
        let mut m = StopMatcher::new(["\n\nUser:".to_string()]);
        let mut out = String::new();
        for piece in ["Hello", " there", "\n", "\nUs", "er:", " more"] {
            let r = m.push(piece);
            out += &r.text;
            if r.stopped {
                break;
            }
        }
        assert_eq!(out, "Hello there");
    }

    #[test]
    fn false_start_is_released_once_it_cannot_match() {
        let mut m = StopMatcher::new(["END".to_string()]);
        assert_eq!(m.push("a E").text, "a ");
        assert_eq!(m.push("N").text, "");
        assert_eq!(m.push("x").text, "ENx");
        assert_eq!(m.push("EN").text, "");
        assert_eq!(m.finish(), "EN");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let mut m = StopMatcher::new(["bb".to_string(), "ab".to_string()]);
        assert_eq!(m.push("xxabb"), Released { text: "xx".into(), stopped: true });
    }
}
