# frozen_string_literal: true

# Test fixture: a Sinatra app (see app.rb); needs Debian's ruby-sinatra.
require_relative "app"

run App
