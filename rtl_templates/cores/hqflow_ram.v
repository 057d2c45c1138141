// hqflow_ram: simple dual-port RAM (one write port, one registered read port, one clock), the
// buffer between cores. Written in the pattern Yosys (memory_bram / synth_xilinx) and the vendor
// tools infer as block RAM (or distributed RAM when small): one array, one clocked always block,
// a synchronous write and a registered read.
//
//   write:  at a rising edge with we = 1, mem[waddr] <= wdata
//   read:   at a rising edge with re = 1, rdata <= mem[raddr]; rdata is valid the cycle after the
//           address (latency 1), and holds while re = 0
//   read during a write to the same address: the old word (read-first)
//
// Parameters: WIDTH bits per word, DEPTH words, ADDR_BITS >= clog2(DEPTH), INIT_FILE an optional
// $readmemh file ("" leaves the memory uninitialized; simulation sees X as 0 under Verilator), ULTRA 1:
// the array in UltraRAM (ram_style "ultra": UltraScale+ only; no INIT_FILE, UltraRAM has no initial
// contents), DISTRIBUTED 1: in LUT RAM (ram_style "distributed": a narrow RAM that block RAM would leave mostly
// empty), BLOCK 1: in block RAM (ram_style "block": its read address straight into the block, where LUT RAM
// would put a multiplexer of many small RAMs after it), none: the synthesis tool's choice.
// Every hqflow core reads its inputs through ports shaped like this RAM's read port (an address
// out, the data in one cycle later) and writes its outputs through one shaped like its write port.
module hqflow_ram #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 16,
    parameter integer ADDR_BITS = (DEPTH > 1) ? $clog2(DEPTH) : 1,
    parameter INIT_FILE = "",
    parameter integer ULTRA = 0,
    parameter integer DISTRIBUTED = 0,
    parameter integer BLOCK = 0
) (
    input  wire                 clk,
    input  wire                 we,
    input  wire [ADDR_BITS-1:0] waddr,
    input  wire [WIDTH-1:0]     wdata,
    input  wire                 re,
    input  wire [ADDR_BITS-1:0] raddr,
    output reg  [WIDTH-1:0]     rdata
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];    // (ULTRA 0; the testbenches may peek at it)

    initial begin
        if (WIDTH < 1 || DEPTH < 1 || ADDR_BITS < 1 || (DEPTH > 1 && ADDR_BITS < $clog2(DEPTH)))
            $error("hqflow_ram: WIDTH %0d and DEPTH %0d must be >= 1, ADDR_BITS %0d >= clog2(DEPTH)", WIDTH, DEPTH, ADDR_BITS);
        if (ULTRA != 0 && INIT_FILE != "") $error("hqflow_ram: an UltraRAM array has no initial contents");
        if (INIT_FILE != "") $readmemh(INIT_FILE, mem);
    end

    generate
        if (ULTRA != 0) begin : ultra
            (* ram_style = "ultra" *) reg [WIDTH-1:0] umem [0:DEPTH-1];
            always @(posedge clk) begin
                if (we) umem[waddr] <= wdata;
                if (re) rdata <= umem[raddr];
            end
        end else if (DISTRIBUTED != 0) begin : distributed
            (* ram_style = "distributed" *) reg [WIDTH-1:0] dmem [0:DEPTH-1];
            always @(posedge clk) begin
                if (we) dmem[waddr] <= wdata;
                if (re) rdata <= dmem[raddr];
            end
        end else if (BLOCK != 0) begin : block
            (* ram_style = "block" *) reg [WIDTH-1:0] bmem [0:DEPTH-1];
            always @(posedge clk) begin
                if (we) bmem[waddr] <= wdata;
                if (re) rdata <= bmem[raddr];
            end
        end else begin : any
            always @(posedge clk) begin
                if (we) mem[waddr] <= wdata;
                if (re) rdata <= mem[raddr];
            end
        end
    endgenerate
endmodule
