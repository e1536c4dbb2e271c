# frozen_string_literal: true

# Test fixture: a config.ru that fails at load time, for the error handshake.
puts "about to fail"
raise ArgumentError, "broken fixture: no frobnicate configured"
