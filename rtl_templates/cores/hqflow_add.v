// hqflow_add: the residual add, one time step: out[i] = a[i] + b[i] for i < SIZE (numerics: the
// plain integer sum, no rounding; the add op of hqflow/ops/add.py, HLS hqflow::add).
//
// Values are non-negative integers (spikes or counts): a_data A_BITS and b_data B_BITS unsigned,
// out_data OUT_BITS = bits of (a_max + b_max) (the node's width: the sum cannot wrap).
// Ports (the sequential cores' convention): a and b are read through one address, ab_addr -> a_data,
// b_data (two RAMs, the same index; latency 1, hqflow_ram: the data arrive the cycle after the
// address); out_we / out_addr / out_data a RAM write port. One value per cycle.
//
// Handshake: a one-cycle `start` while idle (busy = 0) runs one step; `done` is high during the
// cycle in which the last write is presented (it commits at that clock edge), so a core started
// by `done` reads the finished outputs. busy is high from the cycle after start until done.
// Cycles per time step (the start edge to the edge that samples done):  SIZE + 2
module hqflow_add #(
    parameter integer SIZE = 16,
    parameter integer A_BITS = 1,
    parameter integer B_BITS = 1,
    parameter integer OUT_BITS = 2,
    parameter integer ADDR_BITS = (SIZE > 1) ? $clog2(SIZE) : 1
) (
    input  wire                 clk,
    input  wire                 rst,
    input  wire                 start,
    output wire                 busy,
    output wire                 done,
    output wire [ADDR_BITS-1:0] ab_addr,     // to the a and b RAMs
    input  wire [A_BITS-1:0]    a_data,
    input  wire [B_BITS-1:0]    b_data,
    output reg                  out_we,
    output reg  [ADDR_BITS-1:0] out_addr,
    output reg  [OUT_BITS-1:0]  out_data
);
    initial begin  // elaboration-time checks of the parameters
        if (SIZE < 1 || ADDR_BITS < 1 || (SIZE > 1 && ADDR_BITS < $clog2(SIZE)))
            $error("hqflow_add: SIZE %0d must be >= 1, ADDR_BITS %0d >= clog2(SIZE)", SIZE, ADDR_BITS);
        if (A_BITS < 1 || A_BITS > 64 || B_BITS < 1 || B_BITS > 64 || OUT_BITS < 1 || OUT_BITS > 64)
            $error("hqflow_add: A_BITS %0d, B_BITS %0d, OUT_BITS %0d (1..64)", A_BITS, B_BITS, OUT_BITS);
    end
    reg                 reading, valid1;
    reg [ADDR_BITS-1:0] idx, idx1;

    assign ab_addr = idx;
    assign done = out_we && out_addr == SIZE - 1;
    assign busy = reading || valid1 || out_we;

    always @(posedge clk) begin
        if (rst) begin
            reading <= 1'b0;
            valid1 <= 1'b0;
            out_we <= 1'b0;
            idx <= 0;
        end else begin
            if (start && !busy) begin
                reading <= 1'b1;
                idx <= 0;
            end else if (reading) begin
                if (idx == SIZE - 1) reading <= 1'b0;
                else idx <= idx + 1'b1;
            end
            valid1 <= reading;
            idx1 <= idx;
            out_we <= valid1;
            out_addr <= idx1;
            out_data <= a_data + b_data;
        end
    end
endmodule
