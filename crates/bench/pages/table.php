<?php
// The "real page" of plexer-bench-pages (issue 15): an HTML table rendered from an array of
// ROWS rows, about 2 ms of CPU on the 2-core VM of docs/benchmarks.md. The same file runs
// under php-fpm and under php-cgi workers of `plexer serve`, both with OPcache on.
//
// `?check` answers, as text, what the benchmark prints before it measures: whether OPcache is
// on in this worker and has served this script from its cache, and the CPU time of one page's
// work, measured here with getrusage() so that the figure excludes nginx and the FastCGI hop.

const ROWS = 3000;
const CHECK_RENDERS = 50;

function rows(): array
{
    $rows = [];
    for ($i = 0; $i < ROWS; $i++) {
        $rows[] = [
            'id' => $i,
            'name' => "Product <$i> & co",
            'price' => ($i * 37 % 1000) / 7,
            'stock' => $i % 17,
        ];
    }
    return $rows;
}

function render(array $rows): void
{
    echo "<table>\n<tr><th>#</th><th>name</th><th>price</th><th>stock</th></tr>\n";
    foreach ($rows as $row) {
        echo '<tr><td>', $row['id'], '</td><td>', htmlspecialchars($row['name']),
            '</td><td>', number_format($row['price'], 2), '</td><td>',
            $row['stock'] > 0 ? $row['stock'] : 'sold out', "</td></tr>\n";
    }
    echo "</table>\n";
}

function page(): void
{
    echo "<!DOCTYPE html>\n<html><head><title>Products</title></head><body>\n";
    render(rows());
    echo "</body></html>\n";
}

// User and system CPU time of this process, in microseconds.
function cpu_us(): int
{
    $usage = getrusage();
    return $usage['ru_utime.tv_sec'] * 1000000 + $usage['ru_utime.tv_usec']
        + $usage['ru_stime.tv_sec'] * 1000000 + $usage['ru_stime.tv_usec'];
}

if (isset($_GET['check'])) {
    $status = function_exists('opcache_get_status') ? opcache_get_status(false) : false;
    $times = [];
    for ($n = 0; $n < CHECK_RENDERS; $n++) {
        $before = cpu_us();
        ob_start();
        page();
        $bytes = ob_get_length();
        ob_end_clean();
        $times[] = cpu_us() - $before;
    }
    sort($times);
    header('Content-Type: text/plain');
    echo 'sapi: ', PHP_SAPI, "\n";
    echo 'opcache_enabled: ', ($status && $status['opcache_enabled']) ? 'yes' : 'no', "\n";
    echo 'opcache_hits: ', $status ? $status['opcache_statistics']['hits'] : 0, "\n";
    echo 'page_bytes: ', $bytes, "\n";
    echo 'page_cpu_us_median: ', $times[intdiv(CHECK_RENDERS, 2)], "\n";
    exit;
}

header('Content-Type: text/html; charset=utf-8');
page();
