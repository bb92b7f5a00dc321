#!/usr/bin/perl
# Perl's Sys::Virt (Debian's libsys-virt-perl, libvirt 9.0) driven through the remote
# protocol: connection facts, domains, errors, events, networks, storage, interfaces,
# node devices, read-only refusals, and (with --streams) a volume download stream.
# Prints one line per fact; lists are sorted so that two servers can be compared.
use strict;
use warnings;
use Sys::Virt;

$| = 1;
my ($uri, $ro_uri, $streams) = @ARGV;
Sys::Virt::Event::register_default();
my $c = Sys::Virt->new(uri => $uri);

sub names { return join(",", sort map { $_->get_name() } @_); }
sub kv { my $h = shift; return join(",", map { "$_=$h->{$_}" } sort keys %$h); }

print "type=", $c->get_type(), " lib=", $c->get_library_version(), "\n";
print "domains: ", names($c->list_all_domains()), "\n";
my $d = $c->get_domain_by_name("test");
my $info = $d->get_info();
delete $info->{cpuTime};
print "info: ", kv($info), "\n";
print "uuid=", $d->get_uuid_string(), " id=", $d->get_id(), " os=", $d->get_os_type(), "\n";
print "autostart=", $d->get_autostart(), " persistent=", $d->is_persistent(), "\n";

my $xml = "<domain type='test'><name>perl1</name><memory>65536</memory><os><type>hvm</type></os></domain>";
my $n = $c->define_domain($xml);
$n->create();
print "perl1 active=", $n->is_active(), " state=", join("/", $n->get_state()), "\n";
print "sched: ", kv(scalar $n->get_scheduler_parameters()), "\n";
$n->set_memory(32768);
print "memory now ", $n->get_info()->{memory}, "\n";
$n->suspend(); print "suspended state=", join("/", $n->get_state()), "\n";
$n->resume();
$n->destroy();
$n->undefine();
eval { $c->get_domain_by_name("perl-nope") };
print "error: code=", $@->code, " domain=", $@->domain, " message=", $@->message, "\n";
eval { $c->define_domain("<domain type='test'><name>bad</name>") };
print "xml error: code=", $@->code, " domain=", $@->domain, "\n";

print "networks: ", names($c->list_all_networks()), "\n";
my $net = $c->get_network_by_name("default");
print "net bridge=", $net->get_bridge_name(), " active=", $net->is_active(), "\n";
print "pools: ", names($c->list_all_storage_pools()), "\n";
my $pool = $c->get_storage_pool_by_name("default-pool");
my $pinfo = $pool->get_info();
print "pool state=", $pinfo->{state}, "\n";
my $vol = $pool->create_volume(
    "<volume><name>perlvol</name><capacity>1048576</capacity></volume>");
print "vol path=", $vol->get_path(), " capacity=", $vol->get_info()->{capacity}, "\n";
print "interfaces: ", names($c->list_all_interfaces()), "\n";
print "node devices: ", scalar(my @devs = $c->list_all_node_devices()), "\n";
print "node: ", kv(scalar $c->get_node_info()), "\n";
print "alive=", $c->is_alive(), " secure=", $c->is_secure(), " encrypted=", $c->is_encrypted(), "\n";

my @events;
my $cb = $c->domain_event_register_any(undef, Sys::Virt::Domain::EVENT_ID_LIFECYCLE,
    sub { my (undef, $dom, $event, $detail) = @_; push @events, $dom->get_name() . ":$event:$detail"; });
my $t = $c->create_domain(
    "<domain type='test'><name>perl2</name><memory>65536</memory><os><type>hvm</type></os></domain>");
$t->destroy();
for (1 .. 50) { last if @events >= 2; Sys::Virt::Event::run_default(); }
print "events: @events\n";
$c->domain_event_deregister_any($cb);

if ($streams) {
    my $st = $c->new_stream(0);
    $vol->download($st, 0, 0);
    my ($total, $buf) = (0, "");
    while ((my $got = $st->recv($buf, 65536)) > 0) { $total += $got; }
    $st->finish();
    print "downloaded $total bytes\n";
}
$vol->delete(0);

my $ro = Sys::Virt->new(uri => $ro_uri, readonly => 1);
eval { $ro->get_domain_by_name("test")->destroy() };
print "read-only: code=", $@->code, " message=", $@->message, "\n";
print "done\n";
