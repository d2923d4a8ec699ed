// The one translation unit that compiles Boost.Asio (with its OpenSSL layer) and
// Boost.Beast's non-template code. Everything else includes their headers with
// BOOST_ASIO_SEPARATE_COMPILATION / BOOST_BEAST_SEPARATE_COMPILATION defined
// (PUBLIC on payorch_asio), which keeps every other rebuild short on two cores.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
