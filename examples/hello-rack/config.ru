# frozen_string_literal: true

# The smallest useful Rack app: run it with `ferry start examples/hello-rack`.

run lambda { |_env|
  body = "Hello from Ferry!\n"
  [200, { "content-type" => "text/plain; charset=utf-8", "content-length" => body.bytesize.to_s }, [body]]
}
