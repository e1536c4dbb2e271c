# frozen_string_literal: true

# Test fixture: never loaded; Bundler fails first (see Gemfile).
run ->(_env) { [200, { "content-type" => "text/plain" }, ["unreachable"]] }
