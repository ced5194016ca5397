//! A client that keeps cookies the way a browser does, for tests that walk through a site: it
//! sends the cookies it holds with every request, stores every `Set-Cookie` of a response,
//! and forgets a cookie set with `Max-Age=0`. Redirects are not followed: a test looks at them.

use std::collections::BTreeMap;

use crate::http::{self, HttpResponse};

pub struct Browser {
    port: u16,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    /// A browser with no cookies, talking to the HTTP server on 127.0.0.1:`port`.
    pub fn new(port: u16) -> Self {
        Self {
            port,
            cookies: BTreeMap::new(),
        }
    }

    pub fn get(&mut self, path: &str) -> HttpResponse {
        self.send("GET", path, &[], b"")
    }

    /// A POST of an HTML form (`application/x-www-form-urlencoded`).
    pub fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> HttpResponse {
        let body = fields
            .iter()
            .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
    }

    /// Holds a cookie the server never set (what a client can always do).
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.insert(name.to_owned(), value.to_owned());
    }

    /// The value of the cookie `name`, if the browser holds it.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let cookie_header = self
            .cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if !cookie_header.is_empty() {
            all.push(("Cookie", &cookie_header));
        }
        let response = http::request(self.port, method, path, &all, body);
        for set_cookie in response.headers_named("Set-Cookie") {
            self.store(set_cookie);
        }
        response
    }

    fn store(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';').map(str::trim);
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
            panic!("a Set-Cookie without name=value: {set_cookie:?}");
        };
        let expired = parts.any(|attribute| attribute.eq_ignore_ascii_case("Max-Age=0"));
        if expired {
            self.cookies.remove(name);
        } else {
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
    }
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_what_a_browser_escapes() {
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(form_encode("x-y_z.*"), "x-y_z.*");
    }

    #[test]
    fn cookies_are_kept_replaced_and_expired() {
        let mut browser = Browser::new(0);
        browser.store("a=1; Path=/; HttpOnly");
        browser.store("b=2");
        browser.store("a=3; SameSite=Lax");
        assert_eq!(browser.cookie("a"), Some("3"));
        browser.store("b=; Max-Age=0; Path=/");
        assert_eq!(browser.cookie("b"), None);
    }
}
