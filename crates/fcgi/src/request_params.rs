//! The params a web server sends with a request, as nginx's `fastcgi_params` sends them
//! (RFC 3875 §4.1), for the web servers of our own: `plexer serve --http` and
//! `plexer request`. One place, so that both send what nginx would, and agree.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::params::Params;

/// One request, as a web server knows it.
#[derive(Clone, Debug)]
pub struct RequestParams<'a> {
    /// `SERVER_SOFTWARE`.
    pub software: &'a str,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub protocol: &'a str,
    pub scheme: &'a str,
    pub method: &'a str,
    /// The request-target as the client sent it, query included (`REQUEST_URI`).
    pub uri: &'a str,
    /// The host the client asked for, without its port (`SERVER_NAME`).
    pub server_name: &'a str,
    pub server: SocketAddr,
    pub remote: SocketAddr,
    /// `SCRIPT_NAME`: the script's path; empty mounts the app at `/`, as WSGI servers do.
    pub script_name: &'a str,
    /// `DOCUMENT_URI`: the path, decoded where the web server decodes it (nginx does).
    pub document_uri: Bytes,
    /// `PATH_INFO`, when the web server splits one off.
    pub path_info: Option<Bytes>,
    /// `CONTENT_LENGTH`; `None` for a request without a body.
    pub content_length: Option<u64>,
    pub content_type: Bytes,
}

impl RequestParams<'_> {
    /// The params, in nginx's order; the caller adds `HTTP_*` ones and its own.
    pub fn params(&self) -> Params {
        let query = self.uri.split_once('?').map_or("", |(_, query)| query);
        let mut params = Params::new();
        let text: [(&str, String); 15] = [
            ("GATEWAY_INTERFACE", "CGI/1.1".into()),
            ("SERVER_SOFTWARE", self.software.into()),
            ("SERVER_PROTOCOL", self.protocol.into()),
            ("SERVER_NAME", self.server_name.into()),
            ("SERVER_ADDR", self.server.ip().to_string()),
            ("SERVER_PORT", self.server.port().to_string()),
            ("REMOTE_ADDR", self.remote.ip().to_string()),
            ("REMOTE_PORT", self.remote.port().to_string()),
            ("REQUEST_SCHEME", self.scheme.into()),
            ("REQUEST_METHOD", self.method.into()),
            ("REQUEST_URI", self.uri.into()),
            ("QUERY_STRING", query.into()),
            ("SCRIPT_NAME", self.script_name.into()),
            (
                "CONTENT_LENGTH",
                self.content_length
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            ),
            // php-cgi's cgi.force_redirect wants it, and nginx's fastcgi_params sends it.
            ("REDIRECT_STATUS", "200".into()),
        ];
        for (name, value) in text {
            params.push(name, value);
        }
        if let Some(path_info) = &self.path_info {
            params.push("PATH_INFO", path_info.clone());
        }
        params.push("DOCUMENT_URI", self.document_uri.clone());
        params.push("CONTENT_TYPE", self.content_type.clone());
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_becomes_nginx_s_params() {
        let request = RequestParams {
            software: "test",
            protocol: "HTTP/1.1",
            scheme: "http",
            method: "POST",
            uri: "/a%20b?x=1",
            server_name: "example.org",
            server: "127.0.0.1:8080".parse().unwrap(),
            remote: "127.0.0.1:40000".parse().unwrap(),
            script_name: "",
            document_uri: Bytes::from_static(b"/a b"),
            path_info: Some(Bytes::from_static(b"/a b")),
            content_length: Some(3),
            content_type: Bytes::from_static(b"text/plain"),
        };
        let params = request.params();
        for (name, value) in [
            ("REQUEST_URI", "/a%20b?x=1"),
            ("QUERY_STRING", "x=1"),
            ("DOCUMENT_URI", "/a b"),
            ("PATH_INFO", "/a b"),
            ("SERVER_PORT", "8080"),
            ("REMOTE_PORT", "40000"),
            ("CONTENT_LENGTH", "3"),
            ("REDIRECT_STATUS", "200"),
            ("SCRIPT_NAME", ""),
        ] {
            assert_eq!(params.get_str(name), Some(value), "{name}");
        }
        let bodiless = RequestParams {
            content_length: None,
            path_info: None,
            ..request
        };
        assert_eq!(bodiless.params().get_str("CONTENT_LENGTH"), Some(""));
        assert_eq!(bodiless.params().get_str("PATH_INFO"), None);
    }
}
