# frozen_string_literal: true

# Test fixture: an app with its own Ferry class (app/models/ferry.rb).
require_relative "app/models/ferry"

run ->(_env) { [200, { "content-type" => "text/plain" }, [Ferry.describe]] }
