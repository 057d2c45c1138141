// hqflow_buffer: the buffer of one node's output for one time step, between the core that writes
// it and the cores that read it (hqflow_top). A RAM of DEPTH = ceil(SIZE / PACK) words of PACK
// values of BITS bits (hqflow_ram: block RAM when large).
//
//   write:  word address waddr, PACK values (value p in bits [p*BITS, (p+1)*BITS)): a weighted core
//           writes its P lanes' spikes as one word (PACK = P), every other core one value (PACK = 1)
//   read:   element index raddr (the reader's own address: the node's output in hqflow's RTL
//           layout, channels last), rdata one cycle later = value raddr % PACK of word raddr / PACK
// PACK is a power of two (the top chooses it so), so the split is a shift and a mask. With PACK = P
// and P | O, element i of a weighted node's output ([positions][O], i = pos*O + o) lies in word
// i / P = pos*G + o / P, bit o % P: exactly where the core wrote it.
//
// `ifdef HQFLOW_TRACE adds a combinational peek port (peek_addr -> peek_data, same element
// indexing) through which the co-simulation testbench reads the whole buffer after each step.
module hqflow_buffer #(
    parameter integer SIZE = 16,
    parameter integer PACK = 1,
    parameter integer BITS = 1,
    parameter integer ADDR_BITS = 32
) (
    input  wire                 clk,
    input  wire                 we,
    input  wire [ADDR_BITS-1:0] waddr,
    input  wire [PACK*BITS-1:0] wdata,
    input  wire [ADDR_BITS-1:0] raddr,
    output wire [BITS-1:0]      rdata
`ifdef HQFLOW_TRACE
    ,
    input  wire [ADDR_BITS-1:0] peek_addr,
    output wire [BITS-1:0]      peek_data
`endif
);
    initial if (SIZE < 1 || PACK < 1 || (PACK & (PACK - 1)) != 0 || BITS < 1 || ADDR_BITS < 1)
        $error("hqflow_buffer: SIZE %0d, PACK %0d (a power of two), BITS %0d, ADDR_BITS %0d must be >= 1",
               SIZE, PACK, BITS, ADDR_BITS);
    localparam integer DEPTH = (SIZE + PACK - 1) / PACK;
    localparam integer SH = PACK > 1 ? $clog2(PACK) : 0;
    localparam integer WA = DEPTH > 1 ? $clog2(DEPTH) : 1;

    wire [PACK*BITS-1:0] word;
    wire [WA-1:0] word_addr = raddr >> SH;
    hqflow_ram #(.WIDTH(PACK * BITS), .DEPTH(DEPTH), .ADDR_BITS(WA)) ram (
        .clk(clk), .we(we), .waddr(waddr[WA-1:0]), .wdata(wdata), .re(1'b1), .raddr(word_addr), .rdata(word));

    generate
        if (PACK == 1) begin : single
            assign rdata = word;
`ifdef HQFLOW_TRACE
            assign peek_data = ram.mem[peek_addr[WA-1:0]];
`endif
        end else begin : packed_values
            reg [SH-1:0] lane;                      // the value's slot, one cycle behind the address
            always @(posedge clk) lane <= raddr[SH-1:0];
            assign rdata = word[lane*BITS +: BITS];
`ifdef HQFLOW_TRACE
            wire [PACK*BITS-1:0] peek_word = ram.mem[peek_addr >> SH];
            assign peek_data = peek_word[peek_addr[SH-1:0]*BITS +: BITS];
`endif
        end
    endgenerate
endmodule
