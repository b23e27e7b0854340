//! `hello`: the smallest zerofn function, a `wasi:http` handler that answers every
//! request with a greeting.

#![forbid(unsafe_code)]

use std::io::Write as _;

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(Hello);

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let Ok(headers) = Fields::from_list(&[(
            "content-type".to_owned(),
            b"text/plain; charset=utf-8".to_vec(),
        )]) else {
            unreachable!("a constant, valid header")
        };
        let response = OutgoingResponse::new(headers);
        // A new response defaults to 200 OK.
        let Ok(body) = response.body() else {
            unreachable!("the body of a new response is taken once")
        };
        ResponseOutparam::set(out, Ok(response));

        let Ok(mut stream) = body.write() else {
            unreachable!("the stream of a new body is taken once")
        };
        // `io::Write` waits until the host accepts the bytes; a failure means the client
        // has gone, and dropping the body unfinished tells the host so.
        let written = stream
            .write_all(b"Hello from zerofn!\n")
            .and_then(|()| std::io::Write::flush(&mut stream));
        drop(stream);
        if written.is_ok() {
            let _ = OutgoingBody::finish(body, None);
        }
    }
}
