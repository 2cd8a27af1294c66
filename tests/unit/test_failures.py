"""A replica's failure reaches the user as its own exception, not as Ray's wrapping of it."""

from serve_app.failures import root_cause

RAY_WRAPPED = """\x1b[36mray::ServeReplica:app:TaggedLLMServer:m.handle_request_with_rejection()\x1b[39m (pid=1, ip=10.0.0.1)
  File "/venv/ray/serve/_private/replica.py", line 1809, in handle_request_with_rejection
    async for result in self._user_callable_wrapper.call_user_generator(
  File "/venv/vllm/model_executor/model_loader/weight_utils.py", line 512, in safetensors_weights_iterator
    with safe_open(st_file, framework="pt") as f:
         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
safetensors_rust.SafetensorError: Error while deserializing header: incomplete metadata, file not fully covered
"""


def test_the_last_exception_of_a_ray_traceback_is_the_cause():
    assert root_cause(RAY_WRAPPED) == (
        "safetensors_rust.SafetensorError: Error while deserializing header: "
        "incomplete metadata, file not fully covered"
    )


def test_detail_lines_under_the_exception_are_kept_and_no_exception_is_none():
    text = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad max_model_len\n  User-specified 8192'
    assert root_cause(text) == "ValueError: bad max_model_len User-specified 8192"
    assert root_cause("The actor died unexpectedly before finishing this task.") is None
