//! The OpenAPI 3 document served at `/openapi.json`.

use serde_json::{Value, json};

pub fn document() -> Value {
    let error = json!({"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string"},
        "limit": {"type": "string", "description": "the violated limit: max_body_bytes, max_pixels, max_text_chars, max_batch_posts, request_timeout_ms, max_concurrency"}}});
    let post = json!({"type": "object", "additionalProperties": false, "properties": {
        "id": {"type": "string"},
        "text": {"type": "string", "description": "empty or left out: an image-only post (classification runs; a tagger needs words)"},
        "image": {"type": "string", "format": "byte", "description": "base64 PNG or JPEG (a data: URL is accepted); left out: a text-only post, the model is told the image is absent"},
        "ocr": {"type": "string", "description": "OCR text of the image, read by CLFA models with the OCR stream"}}});
    let result = json!({"type": "object", "description": "classification: label + probs; NER: words, tags, entities", "properties": {
        "id": {"type": "string"},
        "label": {"type": "string"},
        "probs": {"type": "object", "additionalProperties": {"type": "number"}},
        "words": {"type": "array", "items": {"type": "string"}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "entities": {"type": "array", "items": {"type": "object", "properties": {
            "text": {"type": "string"}, "type": {"type": "string"},
            "start_word": {"type": "integer"}, "end_word": {"type": "integer"},
            "start_char": {"type": "integer"}, "end_char": {"type": "integer"}}}},
        "modalities": {"type": "array", "items": {"type": "string", "enum": ["text", "image", "audio", "video"]}, "description": "the modalities the prediction used"},
        "placeholder_image": {"type": "boolean", "description": "runs trained with data.missing_image = reference_placeholder: a grey image stood in for the missing one"}}});
    let errors = json!({
        "400": {"description": "malformed body", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "413": {"description": "body, image or batch above a limit", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "422": {"description": "wrong types, empty or too long text, undecodable image", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "503": {"description": "too many requests in flight", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "504": {"description": "request timeout", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    });
    let mut one = json!({"200": {"description": "prediction", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Result"}}}}});
    let mut many = json!({"200": {"description": "one result or error per post, in order", "content": {"application/json": {"schema": {
        "type": "object", "properties": {"results": {"type": "array", "items": {"oneOf": [{"$ref": "#/components/schemas/Result"}, {"$ref": "#/components/schemas/Error"}]}}}}}}}});
    for (k, v) in errors.as_object().expect("object") {
        one[k] = v.clone();
        many[k] = v.clone();
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "mmfuse", "version": env!("CARGO_PKG_VERSION"), "description": "Predictions of a trained mmfuse model for text + image posts."},
        "paths": {
            "/v1/predict": {"post": {"summary": "Predict one post", "requestBody": {"required": true, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Post"}},
                "multipart/form-data": {"schema": {"type": "object", "required": ["text"], "properties": {
                    "text": {"type": "string"}, "id": {"type": "string"}, "image": {"type": "string", "format": "binary"}, "ocr": {"type": "string"}}}}}},
                "responses": one}},
            "/v1/predict/batch": {"post": {"summary": "Predict several posts", "requestBody": {"required": true, "content": {
                "application/json": {"schema": {"type": "object", "required": ["posts"], "properties": {"posts": {"type": "array", "items": {"$ref": "#/components/schemas/Post"}}}}}}},
                "responses": many}},
            "/v1/info": {"get": {"summary": "The model's task and labels", "responses": {"200": {"description": "task and labels"}}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition format"}}}}
        },
        "components": {"schemas": {"Post": post, "Result": result, "Error": error}}
    })
}
